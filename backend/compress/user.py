"""User prefill methods (README "Write your own prefill method"), registered by the policy files (#17)."""
_USER: dict = {}


def user_methods() -> dict:
    return dict(_USER)


def publish(methods: dict) -> None:
    """Replace the user's prefill methods (name → methods.Method)."""
    _USER.clear()
    _USER.update(methods)
