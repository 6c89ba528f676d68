"""The chat and code worlds the organisms are built on."""
