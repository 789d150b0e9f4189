"""What two or more watchfloor services use: stream names, message models, ids, settings, tables.

`shared` never imports `services`: the services talk only through these contracts.
"""
