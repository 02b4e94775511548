"""Reports: the paper's numbers as data, result tables, comparison figures and the Markdown report.

Nothing here is imported by `import dos`; pandas and matplotlib are needed only by these modules.
"""
