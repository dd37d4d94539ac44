#!/usr/bin/python3
"""libauparse peer for bench-vs-ausearch.sh: count the AVC records of a log.

    /usr/bin/python3 auparse_count.py LOG

Uses libauparse's own search (`type = AVC`, evaluated in C, like `ausearch -m AVC`), so
Python only runs once per matching event; prints "events records". Needs Debian's
python3-audit (the system python, not a virtualenv's).
"""
import sys

import auparse

au = auparse.AuParser(auparse.AUSOURCE_FILE, sys.argv[1])
au.search_add_item("type", "=", "AVC", auparse.AUSEARCH_RULE_CLEAR)
au.search_set_stop(auparse.AUSEARCH_STOP_EVENT)
events = records = 0
while au.search_next_event():
    events += 1
    au.first_record()
    while True:
        if au.get_type_name() == "AVC":
            records += 1
        if not au.next_record():
            break
    # search_next_event itself moves past the current event.
print(events, records)
