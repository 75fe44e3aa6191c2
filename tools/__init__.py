"""The series' build tools, outside both packages: the notebook runner behind ``make run``
(:mod:`tools.run_notebooks`), the README's generated sections (:mod:`tools.readme`), the static book
(:mod:`tools.book`) and its checks (``tools/check_book.py``). Run from the repository root:
``python -m tools.readme``."""
