"""Billing's URL on the public host: Stripe's webhook events."""

from django.urls import path

from billing.webhooks import stripe_webhook

app_name = "billing_public"

urlpatterns = [path("", stripe_webhook, name="stripe_webhook")]
