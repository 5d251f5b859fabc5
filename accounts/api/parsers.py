"""The REST API's JSON parser: DRF's, plus a clear 400 for JSON nested too deeply.

Python's JSON decoder raises RecursionError (not ValueError) past about a thousand levels, which
DRF lets through as a 500 with Django's HTML page; here it is a ParseError, rendered as the API's
JSON error like any other malformed body.
"""

from django.utils.translation import gettext as _
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class BoundedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(_("JSON parse error - the document is nested too deeply.")) from None
