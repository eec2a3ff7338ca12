"""The data path's official Google clients (Pub/Sub publisher and subscriber, BigQuery): against emulators on
loopback, or with Application Default Credentials. `ltmctl.environments` picks which for an environment; everything
below the command layer takes the clients as arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Clients:
    project: str
    publisher: Any
    subscriber: Any
    bigquery: Any

    def close(self) -> None:
        for client in (self.publisher, self.subscriber):
            transport = getattr(client, "transport", None) or getattr(client, "_transport", None)
            if transport is not None:
                transport.close()
        self.bigquery.close()


# What the Pub/Sub library sets on the channels it makes itself (GCP): no cap on message size. gRPC's default
# receive cap (4 MiB) would fail any pull whose messages add up to more, after the emulator had leased them.
CHANNEL_OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]


def publisher_for_emulator(host: str, **options: Any) -> Any:
    import grpc
    from google.cloud import pubsub_v1
    from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport

    # Explicit insecure channel instead of PUBSUB_EMULATOR_HOST: no process-wide environment to mutate.
    transport = PublisherGrpcTransport(channel=grpc.insecure_channel(host, options=CHANNEL_OPTIONS), host=host)
    return pubsub_v1.PublisherClient(transport=transport, **options)


def subscriber_for_emulator(host: str) -> Any:
    import grpc
    from google.cloud import pubsub_v1
    from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

    transport = SubscriberGrpcTransport(channel=grpc.insecure_channel(host, options=CHANNEL_OPTIONS),
                                        host=host)
    return pubsub_v1.SubscriberClient(transport=transport)


def bigquery_for_emulator(endpoint: str, project: str) -> Any:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    return bigquery.Client(project=project, credentials=AnonymousCredentials(),
                           client_options={"api_endpoint": endpoint})


def for_emulators(project: str, pubsub_host: str, bigquery_endpoint: str) -> Clients:
    return Clients(project, publisher_for_emulator(pubsub_host), subscriber_for_emulator(pubsub_host),
                   bigquery_for_emulator(bigquery_endpoint, project))


def no_credentials(exc: Exception) -> Exception:
    """The one error for a missing Application Default Credentials, whichever command met it."""
    from ltmctl.errors import BackendError
    from ltmctl.gcp.clients import ADC_HINT

    return BackendError(f"No Application Default Credentials: {exc}", hint=ADC_HINT)


def for_gcp(project: str) -> Clients:
    """Application Default Credentials (`gcloud auth application-default login`, or a service account)."""
    from google.auth.exceptions import DefaultCredentialsError
    from google.cloud import bigquery, pubsub_v1

    try:
        return Clients(project, pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient(),
                       bigquery.Client(project=project))
    except DefaultCredentialsError as exc:
        raise no_credentials(exc) from None


def publisher_for_adc(**options: Any) -> Any:
    """A publisher with custom batch/flow/ordering options, with Application Default Credentials."""
    from google.auth.exceptions import DefaultCredentialsError
    from google.cloud import pubsub_v1

    try:
        return pubsub_v1.PublisherClient(**options)
    except DefaultCredentialsError as exc:
        raise no_credentials(exc) from None
