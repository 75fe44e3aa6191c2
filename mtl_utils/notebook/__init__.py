"""What only the notebooks call: experiments over seeds and budgets, verdicts, figures, run records.

* :mod:`~mtl_utils.notebook.experiments`: grids of runs, their tables, and analyses of finished runs;
* :mod:`~mtl_utils.notebook.report`: Markdown verdicts and small tables;
* :mod:`~mtl_utils.notebook.plots`: every figure (the only module that imports matplotlib);
* :mod:`~mtl_utils.notebook.explore`: live controls (sliders, text boxes) over computed results, static
  under papermill and in the book;
* :mod:`~mtl_utils.notebook.records`: what a run leaves behind (its key numbers, replayed timings);
* :mod:`~mtl_utils.notebook.scaling`: the launch command on one process or several, and what they trained.
"""
