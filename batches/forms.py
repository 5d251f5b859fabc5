"""The batch page's form: a JSONL file, or documents (CSV or plain text) with a prompt template."""

from django import forms
from django.utils.translation import gettext_lazy as _

from keys.models import Model

DEFAULT_TEMPLATE = _("Summarise this document in three sentences:\n\n{document}")


class BatchUploadForm(forms.Form):
    key = forms.ModelChoiceField(label=_("Run as key"), queryset=None, help_text=_(
        "The batch runs with this key's models, limits and budgets, like live traffic."))
    kind = forms.ChoiceField(label=_("Input"), initial="jsonl", widget=forms.RadioSelect, choices=[
        ("jsonl", _("OpenAI batch file (JSONL, one request per line)")),
        ("documents", _("Documents (CSV or text, one per line) and a prompt template")),
    ])
    file = forms.FileField(label=_("File"))
    model = forms.ChoiceField(label=_("Model"), required=False, help_text=_("Documents only."))
    template = forms.CharField(label=_("Prompt template"), required=False, initial=DEFAULT_TEMPLATE,
                               widget=forms.Textarea(attrs={"rows": 3}), help_text=_("Documents only; {document} is replaced by each document."))
    csv_column = forms.CharField(label=_("CSV column"), required=False, max_length=100,
                                 help_text=_("For a CSV file: the column holding the documents. Empty: the file is plain text, one document per line."))
    max_tokens = forms.IntegerField(label=_("Max output tokens per request"), required=False, min_value=1, max_value=100_000, initial=256)
    cap = forms.DecimalField(label=_("Cost cap"), required=False, min_value=0, max_digits=20, decimal_places=6, help_text=_(
        "The batch never spends more. Empty: the key's remaining budget (no cap if it has none)."))
    # Not required: a form posted without it (a script, an older page) runs through the gateway, as before.
    mode = forms.ChoiceField(label=_("Run"), initial="relay", required=False, widget=forms.RadioSelect, choices=[
        ("relay", _("Through the gateway, line by line (any model; pause and resume)")),
        ("native", _("With the provider's own batch API, at its batch price (OpenAI, Anthropic: 50% off; up to 24 hours, cannot be paused)")),
    ])

    def __init__(self, *args, keys, organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["key"].queryset = keys
        names = Model.objects.filter(organization=organization, is_active=True).order_by("name").values_list("name", flat=True)
        self.fields["model"].choices = [(name, name) for name in names]
        self.fields["cap"].label = _("Cost cap (%(currency)s)") % {"currency": organization.currency}

    def clean(self):
        data = super().clean()
        if data.get("kind") == "documents" and not data.get("model"):
            self.add_error("model", _("Choose the model the documents go to."))
        if data.get("cap") is not None and data["cap"] <= 0:
            self.add_error("cap", _("A cap must be more than zero."))
        data["mode"] = data.get("mode") or "relay"
        return data


class BatchStartForm(forms.Form):
    """The second step: start the estimated file (ids from the first step, checked again on start)."""

    key = forms.IntegerField(widget=forms.HiddenInput)
    file_id = forms.CharField(max_length=40, widget=forms.HiddenInput)
    endpoint = forms.CharField(max_length=64, widget=forms.HiddenInput)
    cap = forms.DecimalField(required=False, max_digits=20, decimal_places=6, widget=forms.HiddenInput)
    mode = forms.ChoiceField(required=False, choices=[("relay", "relay"), ("native", "native")], widget=forms.HiddenInput)
