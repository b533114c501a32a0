"""Datasets in verl's parquet schema: converters, one-shot sets, and the ``mirage data`` command.

One module per source family: ``math_data`` (DeepScaleR, MATH500, AIME24, AMC23),
``korbench``, ``synlogic``, ``one_shot``; ``prepare`` holds the registry of dataset
names and writes ``<data root>/verl/<name>.parquet``; ``hub`` fetches raw files.
Importing this package is cheap (the CLI imports it); the modules import pandas.
"""
