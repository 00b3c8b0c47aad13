from reprotrain.cli import entry

entry()
