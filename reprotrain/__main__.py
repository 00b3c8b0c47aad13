from reprotrain.console import entry

entry()
