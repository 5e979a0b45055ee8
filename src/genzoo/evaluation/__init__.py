"""Measurements of trained runs, each number with its protocol: sections, sample quality, probes, reports."""

from genzoo.evaluation.records import record
from genzoo.evaluation.sections import SECTIONS, applicable_sections, evaluate, summary
from genzoo.evaluation.text import text_section  # registers the `text` section

__all__ = ["SECTIONS", "applicable_sections", "evaluate", "record", "summary", "text_section"]
