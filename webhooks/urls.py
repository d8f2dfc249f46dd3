from django.urls import path

from webhooks import apis

urlpatterns = [
    path("settings", apis.SettingsApi.as_view(), name="settings"),
    path("settings/webhook", apis.WebhookHealthApi.as_view(), name="settings-webhook"),
    path("settings/webhook/retry", apis.WebhookRetryApi.as_view(), name="settings-webhook-retry"),
]
