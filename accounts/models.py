"""People of one workspace (in its own schema), their invitations, and sign-up log-in handoffs.

A person who works for two businesses has two accounts. Platform operators are users in the public
schema. Single sign-on links a user to an identity provider's subject (`SSOIdentity`, per issuer);
each workspace has its own identity provider (`SSOConfig`), group → role mapping and SCIM tokens.
"""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.db import models
from django.utils import timezone

from core.actors import Actor, ActorType
from rbac.roles import Role


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra) -> User:
        email = self.normalize_email(email).lower()
        user = self.model(email=email, **extra)
        user.set_password(password) if password else user.set_unusable_password()
        user.save(using=self._db)
        return user

    def get_by_natural_key(self, email: str) -> User:
        return self.get(email__iexact=email)


class User(AbstractBaseUser):
    class AuthSource(models.TextChoices):
        PASSWORD = "password", "Password"
        SSO = "sso", "Single sign-on"

    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=150, blank=True)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    is_active = models.BooleanField(default=True)
    is_operator = models.BooleanField(default=False, help_text="Platform operator (public schema only).")
    auth_source = models.CharField(max_length=16, choices=AuthSource.choices, default=AuthSource.PASSWORD)
    sso_subject = models.CharField(max_length=255, blank=True, default="")
    scim_external_id = models.CharField(max_length=255, blank=True, default="")
    scim_user_name = models.CharField(max_length=255, blank=True, default="")  # SCIM userName, if not the e-mail
    scim_attributes = models.JSONField(default=dict, blank=True)  # name/displayName as the IdP sent them
    scim_deleted_at = models.DateTimeField(null=True, blank=True, help_text="Deleted over SCIM (kept deactivated).")
    date_joined = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    deactivated_at = models.DateTimeField(null=True, blank=True)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["email"]
        constraints = [
            models.UniqueConstraint(
                fields=["sso_subject"], condition=~models.Q(sso_subject=""), name="accounts_user_sso_subject_unique"
            )
        ]

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        return self.full_name or self.email

    def get_full_name(self) -> str:
        return self.full_name

    def get_short_name(self) -> str:
        return self.full_name.split(" ")[0] if self.full_name else self.email

    def as_actor(self) -> Actor:
        return Actor(ActorType.USER, str(self.pk), self.email, role=self.role, principal=self)


class Invitation(models.Model):
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_user = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Invitation for {self.email}"

    @property
    def status(self) -> str:
        if self.accepted_at:
            return "accepted"
        if self.revoked_at:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        return "pending"


class LoginHandoff(models.Model):
    """A single-use, short-lived token that logs the new Admin in on their workspace's own host."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    token_hash = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Log-in handoff for user {self.user_id}"


class SSOConfig(models.Model):
    """The workspace's own identity provider (one row per workspace schema): OpenID Connect or SAML,
    which e-mail domains it vouches for, the role of people it brings in, and SSO-only mode."""

    class Protocol(models.TextChoices):
        OIDC = "oidc", "OpenID Connect"
        SAML = "saml", "SAML 2.0"

    protocol = models.CharField(max_length=8, choices=Protocol.choices, default=Protocol.OIDC)
    enabled = models.BooleanField(default=False)
    display_name = models.CharField(max_length=80, default="", blank=True, help_text="Shown as 'Sign in with …'.")
    # OpenID Connect
    issuer = models.URLField(max_length=500, blank=True, default="")
    client_id = models.CharField(max_length=255, blank=True, default="")
    client_secret_encrypted = models.TextField(blank=True, default="")  # core.secrets_at_rest
    scopes = models.CharField(max_length=255, default="openid email profile")
    claim_email = models.CharField(max_length=64, default="email")
    claim_name = models.CharField(max_length=64, default="name")
    claim_groups = models.CharField(max_length=64, default="groups")
    # The issuer's discovery document as last read ("Test connection" and saving refresh it).
    discovery = models.JSONField(default=dict, blank=True)
    discovered_at = models.DateTimeField(null=True, blank=True)
    # SAML 2.0
    saml_metadata_url = models.URLField(max_length=500, blank=True, default="")
    saml_metadata_xml = models.TextField(blank=True, default="")
    # Read from the metadata when it is saved (the log-in page and the CSP need them without parsing it)
    saml_idp_entity_id = models.CharField(max_length=500, blank=True, default="")
    saml_sso_url = models.URLField(max_length=500, blank=True, default="")
    # Rules for people
    domains = models.JSONField(default=list, blank=True, help_text="E-mail domains this IdP vouches for.")
    default_role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    sso_only = models.BooleanField(default=False)
    break_glass_admins = models.ManyToManyField(User, blank=True, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.display_name or self.issuer or self.saml_idp_entity_id or "Single sign-on"

    @property
    def label(self) -> str:
        return self.display_name or self.issuer or self.saml_idp_entity_id or "your identity provider"


class SSOGroupRole(models.Model):
    """The IdP's group (from the groups claim, the SAML attribute or a SCIM group) that grants a role."""

    group = models.CharField(max_length=255, unique=True)
    role = models.CharField(max_length=16, choices=Role.choices)

    class Meta:
        ordering = ["group"]

    def __str__(self) -> str:
        return f"{self.group} → {self.role}"


class SSOIdentity(models.Model):
    """A member as the IdP knows them: (issuer, subject) is theirs for good, whatever their e-mail."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="sso_identities")
    issuer = models.CharField(max_length=500)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)
    last_login_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="accounts_sso_identity_unique")]

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"


class SCIMToken(models.Model):
    """The bearer token the IdP's SCIM client provisions with (shown once, stored hashed)."""

    token_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=16)
    created_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"SCIM token {self.prefix}…"


class SCIMGroup(models.Model):
    """A group the IdP pushed over SCIM; its name drives its members' role through SSOGroupRole."""

    display_name = models.CharField(max_length=255, unique=True)
    external_id = models.CharField(max_length=255, blank=True, default="")
    members = models.ManyToManyField(User, blank=True, related_name="scim_groups")
    member_displays = models.JSONField(default=dict, blank=True)  # {member id: display} as the IdP sent it
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["display_name"]

    def __str__(self) -> str:
        return self.display_name


class SAMLAssertionSeen(models.Model):
    """A SAML assertion ID already accepted: a copy posted again is a replay. Kept until the assertion
    has expired anyway (then it would be refused for its NotOnOrAfter)."""

    assertion_id = models.CharField(max_length=255, unique=True)
    issuer = models.CharField(max_length=500)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"SAML assertion {self.assertion_id}"
