"""The rules miripersist ships and the entry-point group other packages register theirs in.

Plain data, importing nothing: the option table (:mod:`miripersist.options`) names them in
``--help`` and :mod:`miripersist.registry` finds the rules by them.
"""

GROUP = "miripersist.methods"
#: miripersist's own rules, as its pyproject.toml registers them.
BUILTIN = {
    "notebook": "miripersist.methods.notebook:Notebook",
    "pipeline": "miripersist.methods.pipeline:Pipeline",
    "snowblind": "miripersist.methods.snowblind:Snowblind",
}
DEFAULT = "notebook"
