"""Console pages of webhooks (the API's endpoints live in webhooks/api/)."""

app_name = "webhooks"
urlpatterns: list = []
