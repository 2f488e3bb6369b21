"""The status and control page, ``/health`` and ``/metrics`` (``--web [HOST:]PORT``; docs/installation.md).

``settings.py`` is the config section (imported by config.py: nothing heavy); the rest is imported only when
``--web`` is given, since aiohttp and prometheus_client come with the optional extra ``aadiff-live[web]``.
"""
