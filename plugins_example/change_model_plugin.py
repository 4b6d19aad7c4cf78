"""The developer guide's monkey-patching plugin, as written: it replaces the Backups model.

Rebinding ``Backups`` in this module (``global Backups``) is enough: after
``activate()``, bakthat sees that this module's ``Backups`` is a subclass of
``bakthat.models.Backups`` and installs it there, as ``self.patch`` would, using the
same ``backups`` table.  So every later action returns ``MyBackups`` rows, and
``MyBackups.my_custom_method()`` works.  The explicit form is ``PatchModelPlugin`` below.

Enable with ``plugins: [change_model_plugin.ChangeModelPlugin]``.
"""

from bakthat.plugin import Plugin
from bakthat.models import Backups


class MyBackups(Backups):
    @classmethod
    def my_custom_method(self):
        return True


class ChangeModelPlugin(Plugin):
    """ A basic plugin implementation. """
    def activate(self):
        global Backups
        self.log.info("Replace Backups")
        Backups = MyBackups


class PatchModelPlugin(Plugin):
    """The same replacement, said explicitly: undone when the plugin is unloaded."""

    def activate(self):
        import bakthat.models

        self.patch(bakthat.models, "Backups", MyBackups)
