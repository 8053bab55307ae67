"""Prepared task data: the tokenised on-disk cache trials memory-map, and the prepare step that checks every split
against its task declaration before any trial starts.

Modules: `encoded` (token ids as flat arrays), `cache` (the cache folder: keys, parts, memory-mapped reads),
`prepare` (the step the sweep calls: `prepare_task`, `format_report`). Where rows come from (the Hub, a local
mirror, local files) is the tasks' own business: itsel_ray/tasks/spec.py, mirror.py and rows.py.
"""
