"""Validate EWS request bodies against the vendored messages.xsd (via the wrapper
XSD that libxml2 can compile).  Uses python3-lxml; the schema is compiled once."""
import os

from lxml import etree

WRAPPER = os.path.join("validate", "ews-messages-wrapper.xsd")


class Schema:
    def __init__(self, schema_dir):
        path = os.path.join(schema_dir, WRAPPER)
        self.path = path
        self.schema = etree.XMLSchema(etree.parse(path))

    def validate(self, body_child):
        """None if valid, else the first error message."""
        doc = etree.fromstring(etree.tostring(body_child))
        if self.schema.validate(doc):
            return None
        err = self.schema.error_log.last_error
        return err.message if err is not None else "invalid"


def find_schema_dir(explicit=None):
    """--schema-dir, else ../shared/ews-schema relative to the project root
    (the simulator lives in <root>/tests/sim).  None if absent."""
    if explicit:
        return explicit if os.path.exists(os.path.join(explicit, WRAPPER)) else None
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = []
    if os.environ.get("EWSSIM_SCHEMA_DIR"):
        candidates.append(os.environ["EWSSIM_SCHEMA_DIR"])
    for env in ("top_srcdir", "srcdir"):
        v = os.environ.get(env)
        if v:
            candidates.append(os.path.join(v, "..", "shared", "ews-schema"))
    candidates.append(os.path.join(here, "..", "..", "..", "..", "shared", "ews-schema"))
    for c in candidates:
        if os.path.exists(os.path.join(c, WRAPPER)):
            return os.path.normpath(c)
    return None
