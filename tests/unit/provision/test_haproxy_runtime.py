"""Parsing what HAProxy 2.6's runtime API and master CLI answer (texts as HAProxy writes them)."""

from __future__ import annotations

import pytest

from featctl.provision.haproxy import ServerState, old_workers, parse_proc, parse_stat

#: HAProxy 2.6.12's answer to `show stat` for the endpoint (h0 up, h1 without a socket), as captured.
STAT = (
    '# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_open_streams,h2_total_connections,h2_backend_total_streams,h1_open_connections,h1_open_streams,h1_total_connections,h1_total_streams,h1_bytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,\n'
    'edge,FRONTEND,,,0,0,4096,0,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,0,0,0,,,,0,0,0,0,0,0,,0,0,0,,,0,0,0,0,,,,,,,,,,,,,,,,,,,,,http,,0,0,0,0,0,0,0,,,0,0,,,,,,,0,,,,,,,,,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,\n'
    'reads,h0,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,1,1,0,0,0,3,0,,1,3,1,,0,,2,0,,0,L7OK,200,1,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,Layer7 check passed,,2,2,3,,,,unix,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n'
    'reads,h1,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,1,0,1,1,3,3,,1,3,2,,0,,2,0,,0,SOCKERR,,0,0,0,0,0,0,0,,,,0,0,0,,,,,-1,General socket error (No such file or directory),,0,0,0,0,,,,Socket error,,2,2,0,,,,unix,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n'
    'reads,BACKEND,0,0,0,0,410,0,0,0,0,0,,0,0,0,0,UP,1,1,0,,0,3,0,,1,3,0,,0,,1,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,0,0,0,0,-1,,,0,0,0,0,,,,,,,,,,,,,,http,roundrobin,,,,,,,0,0,0,0,0,,,0,0,0,0,0,,,,,1,0,0,0,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,3,3,429,72,0,0,\n'
    'writes,h0,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,1,1,0,,,3,,,1,4,1,,0,reads/h0,2,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,,,,,,,,,unix,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,0,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n'
    'writes,h1,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,1,0,,,3,,,1,4,2,,0,reads/h1,2,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,,,,,,,,,unix,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,0,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n'
    'writes,BACKEND,0,0,0,0,410,0,0,0,0,0,,0,0,0,0,UP,1,1,0,,0,3,0,,1,4,0,,0,,1,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,0,0,0,0,-1,,,0,0,0,0,,,,,,,,,,,,,,http,roundrobin,,,,,,,0,0,0,0,0,,,0,0,0,0,0,,,,,1,0,0,0,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,\n'
    '\n'
)


def test_parse_stat():
    assert parse_stat(STAT) == [ServerState("h0", "unix", "UP", 3), ServerState("h1", "unix", "DOWN", 3)]
    assert [s.up for s in parse_stat(STAT)] == [True, False]
    assert [s.status for s in parse_stat(STAT, "writes")] == ["UP", "DOWN"]
    assert ServerState("h2", "unix", "UP 1/2", None).up and not ServerState("h2", "unix", "DOWN 1/2", 1).up


@pytest.mark.parametrize(
    ("text", "state"),
    [
        (
            "#<PID>          <type>          <reloads>       <uptime>        <version>      \n"
            "21009           master          0 [failed: 0]   0d00h00m00s     2.6.12-1+deb12u4\n"
            "# workers\n21051           worker          0               0d00h00m00s     2.6.12-1+deb12u4\n# programs\n\n",
            (0, 0, True),
        ),
        (  # a reload that could not bind: the old worker serves on, no worker of the last load
            "#<PID>          <type>          <reloads>       <uptime>        <version>      \n"
            "21009           master          1 [failed: 1]   0d00h00m06s     2.6.12-1+deb12u4\n"
            "# workers\n21051           worker          1               0d00h00m06s     2.6.12-1+deb12u4\n# programs\n\n",
            (1, 1, False),
        ),
        (
            "21009           master          2 [failed: 0]   0d00h01m00s     2.6.12\n# workers\n"
            "21100           worker          0               0d00h00m01s     2.6.12\n# old workers\n"
            "21051           worker          2               0d00h01m00s     2.6.12\n",
            (2, 0, True),
        ),
        ("", None),
    ],
)
def test_parse_proc(text, state):
    assert parse_proc(text) == state


def test_old_workers():
    text = (
        "21009           master          2 [failed: 0]   0d00h01m00s     2.6.12\n# workers\n"
        "21100           worker          0               0d00h00m01s     2.6.12\n# old workers\n"
        "21051           worker          2               0d00h01m00s     2.6.12\n"
        "21077           worker          1               0d00h00m30s     2.6.12\n# programs\n\n"
    )
    assert old_workers(text) == [21051, 21077]
    assert old_workers(text.replace("# old workers\n", "")) == []
