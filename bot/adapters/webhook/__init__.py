"""A traffic router that asks the user's CD to act: signed JSON webhooks (``router``), one per
change of a target's traffic, with their signatures (``signing``). docs/webhooks.md has the
contract a receiver implements."""
