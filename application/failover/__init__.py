"""Every write, and the failover journal that keeps writes while the primary is down.

``writes.Writes`` is what the HTTP edge calls for each write: it runs the write's
handler from the table in ``writes`` on the primary, or journals it (``journaled``)
and answers from the record's journaled state (``views``). ``reads.RecordReads`` sees those
pending writes, and ``replay`` applies them once the primary is back.
"""
