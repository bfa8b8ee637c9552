"""Public Api methods for user eviction policies (backend/eviction/custom_policies.py).

Loading a policy file runs its code. The policies folder loads without asking (it is
where the user puts the files they wrote); any other file or folder needs
`trust: true`, which the UI sends only after the user confirmed.
"""
from ..envelope import public
from ..errors import UserError
from ..eviction.custom_policies import PolicyRegistry
from ..labels import label_table
from ..validate import flag, params_dict, text

TRUST_MESSAGE = ("Loading a policy file runs its Python code on this machine, with your permissions. Only load "
                 "files you wrote or trust; then ask again with trust: true.")


def policy_registry(state) -> PolicyRegistry:
    """The app's user policies; the policies folder is read on first use."""
    if state.policies is None:
        registry = PolicyRegistry()
        registry.reload()
        state.policies = registry
    return state.policies


def _require_trust(params: dict, what: str) -> None:
    if not flag(params, "trust"):
        raise UserError("needs_trust", f"{what} is outside the policies folder. {TRUST_MESSAGE}", "trust")


class PolicyMethods:
    @public
    def user_policies(self, params=None):
        params_dict(params)
        return policy_registry(self._state).listing()

    @public
    def policy_labels(self, params=None):
        """The one table of labels and colours (backend/labels.py): every built-in policy and prefill method, and
        the loaded user files with their LABEL and a colour from their name. Every view draws with it."""
        params_dict(params)
        users = policy_registry(self._state).listing()
        return {"labels": label_table(users["policies"] + users["prefill_methods"])}

    @public
    def reload_policies(self, params=None):
        """Read the policies folder (and a trusted extra folder) again; recompiles the files that changed."""
        params = params_dict(params)
        registry = policy_registry(self._state)
        if params.get("folder") not in (None, ""):
            folder = text(params, "folder", max_len=4096)
            _require_trust(params, f"The folder {folder}")
            return registry.trust_folder(folder)
        return registry.reload()

    @public
    def load_policy_file(self, params=None):
        """Load one policy file from anywhere (needs trust: true); it then shows beside the built-ins."""
        params = params_dict(params)
        path = text(params, "path", max_len=4096)
        registry = policy_registry(self._state)
        if not registry.in_folder(path):
            _require_trust(params, f"The file {path}")
        policy = registry.trust_file(path)
        return {"policy": policy.listing(), **registry.listing()}
