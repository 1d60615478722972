from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import views
from core.views_on_demand import view_on_demand

# SSO and SCIM load their libraries with their first request (core/views_on_demand.py).

app_name = "accounts"

urlpatterns = [
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    path("accounts/logout/", views.LogoutView.as_view(), name="logout"),
    path("accounts/oidc/login/", view_on_demand("accounts.oidc:WorkspaceOIDCRequestView"), name="oidc_login"),
    path("accounts/oidc/callback/", view_on_demand("accounts.oidc:WorkspaceOIDCCallbackView"), name="oidc_callback"),
    path("accounts/saml/metadata/", view_on_demand("accounts.saml_views:saml_metadata"), name="saml_metadata"),
    path("accounts/saml/login/", view_on_demand("accounts.saml_views:saml_login"), name="saml_login"),
    path("accounts/saml/acs/", view_on_demand("accounts.saml_views:saml_acs", csrf_exempt=True), name="saml_acs"),
    path("accounts/password-reset/", views.PasswordResetView.as_view(), name="password_reset"),
    path(
        "accounts/password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(template_name="accounts/password_reset_done.html"),
        name="password_reset_done",
    ),
    path("accounts/reset/<uidb64>/<token>/", views.PasswordResetConfirmView.as_view(), name="password_reset_confirm"),
    path(
        "accounts/reset/done/",
        auth_views.PasswordResetCompleteView.as_view(template_name="accounts/password_reset_complete.html"),
        name="password_reset_complete",
    ),
    path("accounts/invite/<str:token>/", views.invitation_accept_view, name="invitation_accept"),
    path("accounts/handoff/<str:token>/", views.handoff, name="handoff"),
    path("setup/", views.setup, name="setup"),
    path("settings/", views.workspace_settings, name="workspace_settings"),
    path("settings/sso/", view_on_demand("accounts.sso_views:sso_settings"), name="sso_settings"),
    path(
        "settings/sso/scim-tokens/",
        view_on_demand("accounts.sso_views:scim_token_create_view"),
        name="scim_token_create",
    ),
    path(
        "settings/sso/scim-tokens/<int:pk>/revoke/",
        view_on_demand("accounts.sso_views:scim_token_revoke_view"),
        name="scim_token_revoke",
    ),
    path("members/", views.members, name="members"),
    path("members/<int:pk>/role/", views.member_role, name="member_role"),
    path("members/<int:pk>/remove/", views.member_remove_view, name="member_remove"),
    path("members/invitations/<int:pk>/revoke/", views.invitation_revoke_view, name="invitation_revoke"),
    # SCIM 2.0 provisioning (the workspace's IdP, with its SCIM token)
    path(
        "scim/v2/ServiceProviderConfig",
        view_on_demand("accounts.scim:service_provider_config", csrf_exempt=True),
        name="scim_config",
    ),
    path(
        "scim/v2/ResourceTypes",
        view_on_demand("accounts.scim:resource_types", csrf_exempt=True),
        name="scim_resource_types",
    ),
    path(
        "scim/v2/ResourceTypes/<str:pk>",
        view_on_demand("accounts.scim:resource_types", csrf_exempt=True),
        name="scim_resource_type",
    ),
    path("scim/v2/Schemas", view_on_demand("accounts.scim:schemas", csrf_exempt=True), name="scim_schemas"),
    path("scim/v2/Schemas/<str:pk>", view_on_demand("accounts.scim:schemas", csrf_exempt=True), name="scim_schema"),
    path("scim/v2/.search", view_on_demand("accounts.scim:search", csrf_exempt=True), name="scim_search"),
    path(
        "scim/v2/<str:resource_type>/.search",
        view_on_demand("accounts.scim:search", csrf_exempt=True),
        name="scim_search_type",
    ),
    path("scim/v2/Users", view_on_demand("accounts.scim:users", csrf_exempt=True), name="scim_users"),
    path("scim/v2/Users/<str:pk>", view_on_demand("accounts.scim:user_detail", csrf_exempt=True), name="scim_user"),
    path("scim/v2/Groups", view_on_demand("accounts.scim:groups", csrf_exempt=True), name="scim_groups"),
    path("scim/v2/Groups/<str:pk>", view_on_demand("accounts.scim:group_detail", csrf_exempt=True), name="scim_group"),
    path("scim/v2/<path:rest>", view_on_demand("accounts.scim:not_found", csrf_exempt=True), name="scim_not_found"),
]
