"""Prepared task data: local mirrors of Hub datasets, the tokenised on-disk cache trials memory-map, and the
prepare step that checks every split against its task declaration before any trial starts.

Modules: `rows` (row tables behind one interface), `mirror` (which parquet files hold a split), `encoded`
(token ids as flat arrays), `cache` (the cache folder: keys, parts, memory-mapped reads), `prepare` (the step the
sweep calls: `prepare_task`, `format_report`). This file imports none of them, so that the task declarations can
use the leaf modules without an import cycle.
"""
