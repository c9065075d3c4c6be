"""Stand-in for ufw.common (see __init__.py): the error ufw's calls raise."""


class UFWError(Exception):
    def __init__(self, value):
        super().__init__(value)
        self.value = value
