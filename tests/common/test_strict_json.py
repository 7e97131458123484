"""proto3 JSON read strictly: what ParseDict alone lets through or words in protobuf's terms."""

from __future__ import annotations

import pytest

from services.common import strict_json
from services.common.errors import InvalidArgument
from services.common.pb import gateway_pb2


def _live(text: str) -> gateway_pb2.AssessLiveRequest:
    return strict_json.parse(strict_json.loads(text, "a text frame"), gateway_pb2.AssessLiveRequest(), "a text frame")


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (
            '{"config": "x"}',
            "a text frame: config must be a JSON object (a LiveConfig with the fields target, moshaf, options, "
            "pcm, container, apiKey), got a string",
        ),
        ('{"config": {"target": 7}}', "config.target must be a JSON object (a Target"),
        ('{"config": {}, "audio": "AAAA"}', "AssessLiveRequest takes one of config, audio; got config and audio"),
        ('{"config": {"pcm": {"sampleRateHz": 1e400}}}', "config.pcm.sampleRateHz must be an integer in"),
        (
            '{"config": {"pcm": {"sampleRateHz": 16000.5}}}',
            "must be an integer in -2147483648..2147483647, got 16000.5",
        ),
        (
            '{"config": {"options": {"align": {"thresholds": []}}}}',
            "config.options.align.thresholds must be a JSON object",
        ),
        ('{"config": {"options": {"validators": [1, {}]}}}', "a text frame: Failed to parse"),
        ('{"config": {"apiKey": "k", "api_key": "k"}}', "'apiKey' is given twice in config"),
        (
            '{"config": {"target": {"ayah": {"surah": "9x"}}}}',
            "config.target.ayah.surah must be an integer in 1..114, got '9x'",
        ),
        ('{"confg": {}}', "did you mean 'config'?"),
    ],
)
def test_a_frame_that_is_no_live_request_is_refused_with_the_field_named(frame: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        _live(frame)
    assert message in refused.value.message


def test_what_proto3_json_allows_still_parses() -> None:
    request = _live(
        '{"config": {"target": {"ayah": {"surah": "8", "ayah": 75.0}}, "pcm": {"sampleRateHz": "16000", '
        '"encoding": "PCM_ENCODING_S16LE"}, "options": {"contentThreshold": "NaN", "align": {"thresholds": {"a": 1}}}, '
        '"moshaf": null}}'
    )
    assert request.config.target.ayah.surah == 8 and request.config.target.ayah.ayah == 75
    assert request.config.pcm.sample_rate_hz == 16000


def test_ranges_of_a_target_depend_on_its_surah() -> None:
    body = {"target": {"ayahRange": {"surah": 1, "firstAyah": 1, "lastAyah": 8}}}
    with pytest.raises(InvalidArgument, match=r"lastAyah must be an integer in 1..7 \(surah 1 has 7 ayahs\), got 8"):
        strict_json.parse(body, gateway_pb2.AssessRequest(), "AssessRequest")
    # The surah is checked first whatever the key order, so its ayahs' range is the right one.
    body = {"target": {"ayah": {"ayah": 200, "surah": 2}}}
    assert strict_json.parse(body, gateway_pb2.AssessRequest(), "AssessRequest").target.ayah.ayah == 200
