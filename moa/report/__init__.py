"""The reporting wing: what a run leaves on disk and what a reader sees of it.

* :mod:`moa.report.provenance`: the run record every results file carries (version, commit, parameters);
* :mod:`moa.report.results`: results files (NetCDF, CSV, JSON), written atomically, read back and re-run;
* :mod:`moa.report.plots`: the shared figure style and :func:`~moa.report.plots.save_figure`;
* :mod:`moa.report.index`: the results page (``index.html``/``index.md``) of a run;
* :mod:`moa.report.summaries`: the typed summary each experiment returns and the claims read;
* :mod:`moa.report.claims`: verdicts on the scientific claims, from those summaries;
* :mod:`moa.report.gallery`: ``docs/gallery.md`` from a full run's figures;
* :mod:`moa.report.docgen`: the generated documents under ``docs/`` (documentation only, no simulation).

Nothing is imported here, so that the simulator can record provenance without loading matplotlib.
"""
