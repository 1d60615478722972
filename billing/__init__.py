"""Plans and what they entitle a workspace to: the one place limits live (layer 1, knows no app above
`tenants`). Every surface asks `billing.entitlements`; nothing else holds a limit."""
