"""The memory service: versioned agent memory traces and the playbook."""
