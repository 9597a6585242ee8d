"""The routes of `kb serve`, one router per part of the API; `kb.server.app.create_app` includes them."""
