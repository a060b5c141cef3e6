"""The harness's data folder: build the NB201 table from the official releases, and check what is there.

``python -m harness.data convert SOURCE OUT`` and ``python -m harness.data check`` (:mod:`harness.data.__main__`).
The modules, one job each: :mod:`~harness.data.unpickle` (the restricted unpickler), :mod:`~harness.data.official`
(the three official layouts, one architecture at a time), :mod:`~harness.data.convert` (records to the table and its
manifest) and :mod:`~harness.data.check` (every data file the harness reads: present, checksum, where it comes from).
"""
