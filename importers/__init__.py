"""Ledger importers (台账导入): spreadsheets kept by hand in the communities, read into the
registers. The pieces, in the order data flows through them:

    reading.py   bytes → rows: format and encoding detection, header row, streaming chunks
    columns.py   header spellings → canonical field names, per ledger kind, and the required set
    values.py    cell text → typed values (ID numbers, dates, phones, enums), or ``Invalid``

None of them touches the database: the importers that sit on top go through the vault like
every other entry point (STYLE.md, habit 1).
"""
