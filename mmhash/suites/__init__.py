"""The named benchmark grids that ship with mmhash (``NAME.toml``) and the accepted regression
values of each (``NAME.json`` beside it); see :mod:`mmhash.bench.suite` and
:mod:`mmhash.bench.regress`. Data files only: this package has no code."""
