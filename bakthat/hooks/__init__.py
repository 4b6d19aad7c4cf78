"""Hooks around bakthat's work, one module per hook kind.

- :mod:`bakthat.hooks.command` — command hooks: parse ``{run, timeout, err_is_fatal,
  dry_run, shell}``, run one in its own process group with a timeout and bounded output.
- :mod:`bakthat.hooks.plan` — the stack executor: ``before`` hooks in order, the work,
  ``after`` hooks in reverse, ``on_error``, ``finally``; pollable while it runs.
- :mod:`bakthat.hooks.record` — hook runs into the catalog; the profile's ``hooks:``
  around a plain backup (jobs: :mod:`bakthat.jobs_run`).

Python event handlers (``bakthat.events``) are a different mechanism and live in
:mod:`bakthat.eventing`; both see the same :class:`bakthat.context.RunContext`.
"""
