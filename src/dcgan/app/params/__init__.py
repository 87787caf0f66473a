"""params.yaml by section: ``typed`` (shared core), one module per section, ``whole`` (all of them).
A stage imports only the sections it reads, so a schema edit reruns only those stages."""
