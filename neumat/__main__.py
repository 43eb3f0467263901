from neumat.cli import run

run()
