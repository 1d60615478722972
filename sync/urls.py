"""Console pages of devices and pairing, and the HTTP side of /sync/v1/ (pairing exchange)."""

app_name = "sync"
urlpatterns: list = []
