"""The reproduction report: records read from a sweep, statistics, references, analysis, and its renderings."""
