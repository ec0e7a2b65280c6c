-- Logout: deletes a session and its token. ARGV: prefix, id. Returns 1 or 0.
if delete_session(ARGV[2]) then return 1 end
return 0
