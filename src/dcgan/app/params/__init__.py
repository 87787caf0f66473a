"""params.yaml, typed and checked, by section: ``typed`` (what every section shares), one module
per section (``base``, ``prepare``, ``augment``, ``evaluator``, ``train``, ``sample``,
``evaluate``) and ``whole`` (all of them). A stage imports only the sections it reads, so an edit
to one section's schema reruns only the stages that read it (dvc.yaml's deps)."""
