"""Evaluation of reports against reference truth (synthetic studies or reader grades).

``evaluate_pairs([(name, report, truth), ...])`` compares ``report.json`` with
``truth.json`` field by field and returns the acceptance metrics with bootstrap 95%
intervals; ``find_pairs(reports_dir, truth_dir)`` matches the files of a cohort.
"""

from pipeline.evaluate.compare import (
    ACCEPTANCE,
    bootstrap_ci,
    compare_study,
    evaluate_pairs,
    find_pairs,
    weighted_kappa,
)

__all__ = [
    "ACCEPTANCE",
    "bootstrap_ci",
    "compare_study",
    "evaluate_pairs",
    "find_pairs",
    "weighted_kappa",
]
