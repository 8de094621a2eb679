"""The live path: pipeline threads and mailboxes, tracking, voting, recognition, the session, soak runs."""
