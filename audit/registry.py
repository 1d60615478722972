"""Every audit action, named `resource.verb`. Recording an action not listed here is an error."""

ACTIONS: dict[str, str] = {
    "workspace.created": "Workspace created",
    "audit.chain_resealed": "Audit log's personal values sealed in the vault (chain re-hashed, old head kept)",
    "workspace.settings_changed": "Workspace settings changed",
    "workspace.backed_up": "Workspace backed up",
    "workspace.restored": "Workspace restored from a backup",
    "workspace.lan_hub_changed": "LAN sync hub switched",
    "workspace.desktop_preferences_changed": "This computer's Tessera preferences changed",
    "workspace.update_started": "Update handed to the package installer",
    "user.signed_up": "Signed up",
    "user.logged_in": "Logged in",
    "user.logged_out": "Logged out",
    "user.login_failed": "Failed log-in",
    "user.locked_out": "Locked out after failed log-ins",
    "user.password_reset_requested": "Password reset requested",
    "user.password_changed": "Password changed",
    "member.invited": "Member invited",
    "member.invitation_revoked": "Invitation revoked",
    "member.joined": "Invitation accepted",
    "member.role_changed": "Role changed",
    "member.removed": "Member removed",
    "member.updated": "Member's details changed (SCIM)",
    "member.erased": "Member erased (their personal data deleted everywhere)",
    "sso.settings_changed": "Single sign-on settings changed",
    "sso.group_roles_changed": "Single sign-on group → role table changed",
    "sso.login_failed": "Single sign-on refused",
    "sso.account_linked": "Account linked to the identity provider",
    "sso.role_kept": "The identity provider's role change was not applied (last Admin)",
    "scim.token_created": "SCIM token created",
    "scim.token_revoked": "SCIM token revoked",
    "scim.group_changed": "SCIM group changed",
    "collection.created": "Collection created",
    "collection.updated": "Collection changed",
    "collection.deleted": "Collection deleted",
    "collection.records_migrated": "Records carried through a field change",
    "record.created": "Record created",
    "record.updated": "Record updated",
    "record.deleted": "Record deleted",
    "record.erased": "Record erased (its values deleted everywhere)",
    "record.sync_conflict": "A phone's change lost a conflict (the current value was kept)",
    "records.imported": "Records imported",
    "records.exported": "Records exported",
    "analytics.exported": "Query result exported",
    "records.bulk_updated": "Records edited in bulk",
    "records.undone": "A change to records undone",
    "records.bulk_deleted": "Records deleted in bulk",
    "api_key.created": "API key created",
    "api_key.revoked": "API key revoked",
    "api_key.rotated": "API key rotated",
    "api_key.expired": "API key expired",
    "pairing.started": "Device pairing started",
    "device.paired": "Device paired",
    "device.revoked": "Device revoked",
    "webhook_endpoint.created": "Webhook endpoint created",
    "webhook_endpoint.updated": "Webhook endpoint changed",
    "webhook_endpoint.deleted": "Webhook endpoint deleted",
    "webhook_endpoint.secret_rotated": "Webhook signing secret rotated",
    "webhook_endpoint.disabled": "Webhook endpoint disabled after failures",
    "webhook_delivery.resent": "Webhook delivery resent",
    "webhook_deliveries.recovered": "Failed webhook deliveries recovered",
    "webhook_settings.changed": "Webhook settings changed",
    "personal_data_map.changed": "Personal data map changed",
    "subject_request.opened": "Data-subject request opened",
    "subject_request.extended": "Data-subject request due date extended",
    "subject_request.exported": "Data-subject access package made",
    "subject_request.erased": "Data-subject data erased",
    "subject_request.rectified": "Data-subject data corrected",
    "subject_request.closed": "Data-subject request closed",
    "subject_request.reminded": "Admins reminded of a data-subject request falling due",
    "retention_policy.changed": "Retention policy changed",
    "retention.applied": "Retention policy applied",
    "compliance_report.exported": "Compliance report exported",
    "billing.subscription_changed": "Subscription changed (plan or status, from Stripe)",
    "billing.payment_failed": "Payment failed: grace period started",
    "billing.trial_ending": "Trial ends soon",
}


class UnknownAuditAction(ValueError):
    pass


def action_check(action: str) -> str:
    if action not in ACTIONS:
        raise UnknownAuditAction(f"{action!r} is not in audit.registry.ACTIONS")
    return action


def action_label(action: str) -> str:
    return ACTIONS.get(action, action)
