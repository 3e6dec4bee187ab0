-- Issue 29: no shared login. The report signs people in with their own accounts only, so it no
-- longer asks whether any account exists (the old DASHBOARD_USER fallback did, through this
-- function); `make run` asks the table itself, as the owner, before it makes the first admin.
DROP FUNCTION IF EXISTS fraud_users_exist();
