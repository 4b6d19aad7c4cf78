"""A kit for testing code that uses or extends bakthat: plugins, backends, scripts.

Modules (none of them touches anything when imported):

``bakthat.testing.catalog``
    :class:`TemporaryBakthat`: an isolated HOME, configuration file, catalog and local
    store for one test, with nothing left behind and nothing leaking in.
``bakthat.testing.recorder``
    :class:`EventRecorder`: records the ``before_``/``on_``/``on_failure`` events of
    every action with their session ids, as a context manager.
``bakthat.testing.pytest_plugin``
    The pytest plugin (registered through the ``pytest11`` entry point, so installing
    bakthat is enough) exposing those as fixtures.
``bakthat.testing.memory``
    An in-memory storage backend (``-d memory``).
``bakthat.testing.conformance``
    The backend conformance suite, for a third-party backend to run against itself.

See docs/plugins.md ("Testing a plugin") for examples.
"""
