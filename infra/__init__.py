"""The pipeline's resources as data: desired state, plan (diff against actual), apply.

infra takes its own plain model (`infra.model`), never the CLI's objects, and talks to the services only
through clients it is given, so the same code runs against the emulators and Google Cloud.
"""
