"""What runs on the caller's side: the `muaalem assess` and `muaalem live` commands, how they
reach a gateway (address, TLS, the API key, the dev key on loopback), and the terminal reports.

It imports the generated protos and services.common only, never a server module: a learner's
laptop needs none of the mesh's code to call it."""
