// Jetty 9 (the Debian libjetty9-java jars) on loopback with a session
// handler, running ParsersServlet as java-jetty9 and, in the same request,
// what Spring 4's web utilities read (java-spring-web), for families.py.
// usage: java JettyParsers PORT TMPDIR
import java.util.List;
import java.util.Map;
import javax.servlet.MultipartConfigElement;
import javax.servlet.http.Cookie;
import javax.servlet.http.HttpServletRequest;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.servlet.ServletContextHandler;
import org.eclipse.jetty.servlet.ServletHolder;
import org.springframework.util.MultiValueMap;
import org.springframework.web.util.UrlPathHelper;
import org.springframework.web.util.WebUtils;

public class JettyParsers {
    static final String[] NAMES = {"access_token", "refresh_token", "refreshToken", "jsessionid"};

    /**
     * Spring's readings that differ from the servlet API: matrix variables
     * (@MatrixVariable: WebUtils.parseMatrixVariables of each path segment's
     * ';' part, decoded by UrlPathHelper), @CookieValue (WebUtils.getCookie)
     * and the lookup path Spring routes on.
     */
    static void spring(HttpServletRequest req, Map<String, List<String>> out) {
        UrlPathHelper helper = new UrlPathHelper();
        String uri = req.getRequestURI();
        for (String seg : uri.split("/")) {
            int i = seg.indexOf(';');
            if (i < 0) continue;
            MultiValueMap<String, String> vars = helper.decodeMatrixVariables(req, WebUtils.parseMatrixVariables(seg.substring(i + 1)));
            for (String n : NAMES) {
                List<String> vs = vars.get(n);
                if (vs != null) for (String v : vs) ParsersServlet.add(out, "path:" + n, v);
            }
        }
        for (String n : ParsersServlet.COOKIES) {
            Cookie c = WebUtils.getCookie(req, n);
            if (c != null) ParsersServlet.addText(out, "cookie:" + n, c.getValue());
        }
    }

    public static void main(String[] args) throws Exception {
        Server server = new Server();
        ServerConnector conn = new ServerConnector(server);
        conn.setHost("127.0.0.1");
        conn.setPort(Integer.parseInt(args[0]));
        server.addConnector(conn);
        ServletContextHandler ctx = new ServletContextHandler(ServletContextHandler.SESSIONS);
        ctx.setContextPath("/");
        ServletHolder holder = new ServletHolder(new ParsersServlet("java-jetty9", JettyParsers::spring));
        holder.getRegistration().setMultipartConfig(new MultipartConfigElement(args[1]));
        ctx.addServlet(holder, "/*");
        server.setHandler(ctx);
        server.start();
        server.join();
    }
}
