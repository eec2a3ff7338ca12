"""Google Cloud: the control-plane clients (`clients`), Google API errors as hints (`errors`), `init`
(`bootstrap`, `config_edit`), provision/status/destroy (`provisioning`), and a fake control plane (`fake`)."""
