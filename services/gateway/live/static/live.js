// The /live page: pick a passage (or let the gateway find it), record, watch each word take its
// colour as the gateway judges it, read the final scores. Plain ES module, no build step.
const $ = (id) => document.getElementById(id);
const VERDICT_CLASS = {
  WORD_VERDICT_CORRECT: "v-correct",
  WORD_VERDICT_MISTAKE: "v-mistake",
  WORD_VERDICT_TAJWEED_ISSUE: "v-tajweed",
  WORD_VERDICT_NOT_ASSESSED: "v-unassessed",
};
const VERDICT_TEXT = {
  WORD_VERDICT_CORRECT: "correct",
  WORD_VERDICT_MISTAKE: "mistake",
  WORD_VERDICT_TAJWEED_ISSUE: "tajweed issue",
  WORD_VERDICT_NOT_ASSESSED: "not assessed",
};

const state = {
  ws: null, audio: null, stream: null, words: [], verdicts: new Map(), recording: false, names: new Map(),
};

function status(text, notice = false) {
  $("status").textContent = text;
  $("status").className = notice ? "notice" : "";
}

async function loadSurahs() {
  const surahs = await (await fetch("/live/surahs.json")).json();
  const select = $("surah");
  for (const s of surahs) {
    state.names.set(s.surah, s.name);
    const option = document.createElement("option");
    option.value = s.surah;
    option.textContent = `${s.surah}. ${s.name}`;
    option.dataset.ayahs = s.ayahs;
    select.append(option);
  }
  const limit = () => {
    const ayahs = Number(select.selectedOptions[0].dataset.ayahs);
    for (const id of ["first", "last"]) {
      $(id).max = ayahs;
      if (Number($(id).value) > ayahs) $(id).value = ayahs;
    }
  };
  select.addEventListener("change", () => { $("first").value = 1; $("last").value = 1; limit(); });
  limit();
  const anywhere = () => {
    for (const label of document.querySelectorAll("label.passage")) {
      label.classList.toggle("off", $("anywhere").checked);
      label.querySelector("select, input").disabled = $("anywhere").checked;
    }
  };
  $("anywhere").addEventListener("change", anywhere);
  anywhere();
}

function target() {
  if ($("anywhere").checked) return { locate: {} };
  const surah = Number($("surah").value);
  const first = Number($("first").value);
  const last = Math.max(first, Number($("last").value));
  return first === last ? { ayah: { surah, ayah: first } } : { ayahRange: { surah, firstAyah: first, lastAyah: last } };
}

async function token() {
  const key = $("key").value.trim();
  const reply = await fetch("/v1/live/token", {
    method: "POST",
    headers: key ? { authorization: `Bearer ${key}` } : {},
  });
  if (!reply.ok) throw new Error(`the gateway refused the key (${reply.status})`);
  return (await reply.json()).token;
}

// keep: the same passage grew (its word indexes hold), so the verdicts shown stay.
function renderWords(words, keep = false) {
  const verse = $("verse");
  verse.replaceChildren();
  state.words = words;
  const kept = keep ? [...state.verdicts.values()] : [];
  state.verdicts.clear();
  words.forEach((word, index) => {
    const span = document.createElement("span");
    span.className = "word";
    span.textContent = word.uthmani;
    span.dataset.index = index;
    span.addEventListener("click", () => showDetails(index));
    verse.append(span, " ");
    const next = words[index + 1];
    if (!next || next.ayah !== word.ayah) {
      const end = document.createElement("span");
      end.className = "ayah-end";
      // U+06DD, the end-of-ayah sign: Amiri Quran draws the number inside it.
      end.textContent = `\u06DD${Number(word.ayah || 0).toLocaleString("ar-EG")}`;
      verse.append(end, " ");
    }
  });
  for (const judged of kept) paint(judged.word.wordIndex || 0, judged);
}

// "112:2" or "Al-Ikhlas 112:2-4", from a RecognizedPassage (end_word exclusive).
function place(passage, named = false) {
  const surah = passage.surah || 0;
  let text = `${surah}:${passage.ayah || 0}`;
  if ((passage.endSurah || surah) === surah && (passage.endAyah || 0) > (passage.ayah || 0)) text += `-${passage.endAyah}`;
  const name = state.names.get(surah);
  return named && name ? `${name} ${text}` : text;
}

function showLocated(event) {
  const found = event.located || {};
  const passage = found.passage || {};
  const line = $("located");
  if (!event.target) {
    // Not sure yet: the candidates the words heard so far cannot tell apart.
    const maybe = [passage, ...(found.candidates || [])].slice(0, 3).map((p) => place(p, true));
    status(`Finding your place… ${maybe.join(" or ")}?`);
    return;
  }
  if (event.extended) {
    renderWords(event.words || [], true);
    return;
  }
  renderWords(event.words || []);
  showPosition(0);
  const how = event.relocated ? "You moved to" : "Found your place:";
  const same = found.ambiguous ? " (the same words are elsewhere too)" : "";
  line.textContent = `${how} ${place(passage, true)}${same}`;
  line.className = found.sure ? "located" : "located unsure";
  line.hidden = false;
  status("Listening…");
}

function wordSpan(index) {
  return $("verse").querySelector(`.word[data-index="${index}"]`);
}

function applyWords(event) {
  const findings = event.findings || [];
  for (const word of event.words || []) {
    const index = word.wordIndex || 0;
    const errors = (event.errors || []).filter((e) => (e.wordIndex || 0) === index);
    paint(index, { word, errors, findings: (word.findingIndexes || []).map((i) => findings[i]) });
  }
}

function paint(index, judged) {
  state.verdicts.set(index, judged);
  const span = wordSpan(index);
  if (span) {
    span.classList.remove(...Object.values(VERDICT_CLASS));
    span.classList.add(VERDICT_CLASS[judged.word.verdict] || "v-unassessed");
  }
}

function showPosition(next) {
  document.querySelectorAll(".word.next").forEach((w) => w.classList.remove("next"));
  const span = wordSpan(next);
  if (span) span.classList.add("next");
}

function showDetails(index) {
  const panel = $("details");
  document.querySelectorAll(".word.selected").forEach((w) => w.classList.remove("selected"));
  wordSpan(index)?.classList.add("selected");
  const word = state.words[index];
  const judged = state.verdicts.get(index);
  panel.replaceChildren();
  const title = document.createElement("h2");
  title.innerHTML = `<span class="ar" dir="rtl"></span> · ayah ${word.ayah}, word ${word.wordInAyah + 1 || 1}`;
  title.querySelector(".ar").textContent = word.uthmani;
  panel.append(title);
  const line = document.createElement("p");
  if (!judged) {
    line.textContent = "Not judged yet.";
  } else {
    const span = judged.word.timeSpan;
    const when = span ? ` at ${(span.startS || 0).toFixed(1)}–${(span.endS || 0).toFixed(1)} s` : "";
    line.innerHTML = `<b class="${VERDICT_CLASS[judged.word.verdict]}">${VERDICT_TEXT[judged.word.verdict]}</b>${when}`;
  }
  panel.append(line);
  for (const error of judged?.errors || []) {
    const item = document.createElement("p");
    item.textContent = `${error.kind}: ${error.messageEn || ""}`;
    if (error.messageAr) {
      const ar = document.createElement("div");
      ar.className = "ar";
      ar.dir = "rtl";
      ar.textContent = error.messageAr;
      item.append(ar);
    }
    panel.append(item);
  }
  // Findings too weakly supported to call a mistake: shown greyed, with their numbers, never red.
  for (const finding of judged?.findings || []) {
    if (!finding || finding.verdict !== "VERDICT_UNCERTAIN") continue;
    const item = document.createElement("p");
    item.className = "uncertain";
    item.textContent = `uncertain, not counted: ${finding.ruleName || ""} ${finding.messageEn || ""}`.trim();
    panel.append(item);
  }
  panel.hidden = false;
}

function showScores(final) {
  const scores = final.scores || {};
  const panel = $("scores");
  panel.replaceChildren();
  const title = document.createElement("h2");
  title.textContent = "Final scores";
  const grid = document.createElement("div");
  grid.className = "grid";
  for (const [name, key] of [["overall", "overall"], ["accuracy", "accuracy"], ["tajweed", "tajweed"], ["confidence", "confidence"]]) {
    const cell = document.createElement("div");
    cell.className = "score";
    cell.innerHTML = `<b>${Math.round(scores[key] || 0)}</b>${name}`;
    grid.append(cell);
  }
  panel.append(title, grid);
  const errors = (final.errors || []).length;
  const note = document.createElement("p");
  note.textContent = errors ? `${errors} point${errors === 1 ? "" : "s"} to work on: tap a coloured word for details.` : "No errors found.";
  panel.append(note);
  // A recitation that moved between passages: these scores are the last one's; say the others'.
  for (const section of final.sections || []) {
    const earlier = document.createElement("p");
    const where = section.located ? place(section.located.passage || {}, true) : "an earlier passage";
    const count = (section.errors || []).length;
    earlier.textContent = `Before that, ${where}: overall ${Math.round((section.scores || {}).overall || 0)}, ${count} point${count === 1 ? "" : "s"} to work on.`;
    panel.append(earlier);
  }
  panel.hidden = false;
}

function onEvent(event) {
  if (event.error) {
    status(`Stopped: ${event.error.message}`, true);
    return;
  }
  if (event.started) {
    renderWords(event.started.words || []);
    showPosition(0);
    $("located").hidden = true;
    const anywhere = !(event.started.words || []).length;
    status(anywhere ? "Listening… recite from anywhere: your place is found from your first words." : "Listening… recite now.");
  } else if (event.located) {
    showLocated(event.located);
  } else if (event.segment) {
    status("Checking what you just recited…");
  } else if (event.words) {
    applyWords(event.words);
    if (state.recording) status("Listening…");
  } else if (event.position) {
    showPosition(event.position.nextWord || 0);
  } else if (event.prelude) {
    status(event.prelude.kind === "basmala" ? "Basmala recognised." : "Isti'adha recognised.");
  } else if (event.offTarget) {
    const seen = (event.offTarget.likelyRecited || [])[0];
    status(seen ? `That sounded like ${seen.surah}:${seen.ayah}, not the chosen passage.` : "That did not match the passage.", true);
  } else if (event.warning) {
    // The gateway is shutting down: it takes no more audio, and the final follows.
    if (event.warning.code === "draining" && state.recording) stop().then(() => status(event.warning.message, true));
    status(event.warning.message, true);
  } else if (event.final) {
    applyWords({ words: event.final.words, errors: event.final.errors, findings: event.final.findings });
    showPosition(-1);
    showScores(event.final);
    status("Done. Tap a word to see its details.");
  }
  if (event.degraded && event.degraded.length) status(`Partly checked (${event.degraded.join(", ")} unavailable).`, true);
}

async function start() {
  const button = $("record");
  button.disabled = true;
  $("scores").hidden = true;
  $("details").hidden = true;
  try {
    const apiKey = await token();
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
    const audio = new AudioContext();
    await audio.audioWorklet.addModule("/live/static/recorder.js");
    const source = audio.createMediaStreamSource(stream);
    const recorder = new AudioWorkletNode(audio, "muaalem-recorder");
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/live`);
    ws.binaryType = "arraybuffer";
    await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = () => reject(new Error("cannot reach the gateway")); });
    ws.onmessage = (message) => onEvent(JSON.parse(message.data));
    ws.onclose = () => { button.disabled = false; };
    ws.send(JSON.stringify({
      config: {
        target: target(),
        pcm: { sampleRateHz: audio.sampleRate, channels: 1, encoding: "PCM_ENCODING_F32LE" },
        options: { includeCorrect: true },
        apiKey,
      },
    }));
    recorder.port.onmessage = (message) => { if (ws.readyState === WebSocket.OPEN) ws.send(message.data.buffer); };
    source.connect(recorder);
    Object.assign(state, { ws, audio, stream, recording: true });
    button.textContent = "■ Stop";
    button.classList.add("recording");
    button.disabled = false;
  } catch (error) {
    status(`Could not start: ${error.message}`, true);
    button.disabled = false;
  }
}

async function stop() {
  const button = $("record");
  state.recording = false;
  state.stream?.getTracks().forEach((t) => t.stop());
  await state.audio?.close();
  if (state.ws?.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify({ end: true }));
  button.textContent = "● Record";
  button.classList.remove("recording");
  button.disabled = true;
  status("Preparing your final scores…");
}

$("record").addEventListener("click", () => (state.recording ? stop() : start()));
loadSurahs();
