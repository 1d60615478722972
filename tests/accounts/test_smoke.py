def test_login_page_renders(anon_client):
    response = anon_client.get("/accounts/login/")
    assert response.status_code == 200
    assert b"Log in" in response.content


def test_admin_sees_members(admin_client):
    response = admin_client.get("/members/")
    assert response.status_code == 200
    assert b"admin@alpha.test" in response.content
