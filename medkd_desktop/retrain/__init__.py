"""`medkd retrain`: distil a new student on a site's own labelled images, compare it with the
bundled one on the site's held-out images, install it as a version, activate or roll back.

Qt-free (the panel in ``ui.retrain_panel`` runs ``medkd retrain`` in a QProcess). One module per
job: ``discover`` (folder or CSV -> labelled items), ``reading`` (each item through open_study and
the card's preprocessing), ``splits`` (patient-grouped, stratified, seeded), ``phash`` and
``summary`` (warnings before training), ``run`` (the whole command), ``compare``, ``calibrate``,
``install`` (atomic write of a version), ``manage`` (list, activate, remove, with audit entries),
``lock`` (one training per task).
"""
