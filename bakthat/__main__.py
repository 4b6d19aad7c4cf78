from bakthat.cli import run

run()
